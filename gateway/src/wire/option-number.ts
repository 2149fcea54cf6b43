import type { OptionName } from 'coap-packet';

/** coap-packet names the options it knows and leaves the others as their number in a string. */
const NUMBER_BY_NAME: Readonly<Record<OptionName, number>> = {
  'If-Match': 1, 'Uri-Host': 3, ETag: 4, 'If-None-Match': 5, Observe: 6, 'Uri-Port': 7, 'Location-Path': 8,
  OSCORE: 9, 'Uri-Path': 11, 'Content-Format': 12, 'Max-Age': 14, 'Uri-Query': 15, 'Hop-Limit': 16, Accept: 17,
  'Q-Block1': 19, 'Location-Query': 20, Block2: 23, Block1: 27, Size2: 28, 'Q-Block2': 31, 'Proxy-Uri': 35,
  'Proxy-Scheme': 39, Size1: 60, 'No-Response': 258,
  'OCF-Accept-Content-Format-Version': 2049, 'OCF-Content-Format-Version': 2053,
};

/** An option's number, from coap-packet's name for it or from the number it left as text. */
export function optionNumber(name: string | number): number {
  if (typeof name === 'number') return name;
  return NUMBER_BY_NAME[name as OptionName] ?? Number(name);
}
