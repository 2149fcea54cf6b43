import type { RouteConfig } from './config/index.ts';
import { ContentFormat, Paths } from './wire/index.ts';

/** Answers GET /.well-known/core: the link-format payload for the request's Uri-Query options. */
export type WellKnownCore = (query: readonly string[]) => Buffer;

interface Link {
  /** The URI-reference between `<` and `>`. */
  target: string;
  /** Each attribute's values; a list-valued attribute holds one entry per item. */
  attributes: ReadonlyMap<string, readonly string[]>;
  text: string;
}

type Attribute = readonly [name: string, value: string | number];

// RFC 6690 section 3.1 (rt, if, rel) and RFC 7252 section 7.2.1 (ct): space-separated lists.
const LIST_ATTRIBUTES = new Set(['rt', 'if', 'rel', 'ct']);

const TEMPLATE_SEGMENT = /^\{\w+\}$/;

/**
 * RFC 6690 link format of the gateway's resources, built once at start. Only concrete
 * resources are listed: a link target must be a URI (RFC 6690 section 2), and the literal
 * prefix of a templated route is no resource (it answers 4.04). Scopes stay out: they are
 * policy, not discovery.
 */
export function createWellKnownCore(routes: readonly RouteConfig[]): WellKnownCore {
  const links: Link[] = [
    link(Paths.auth, [['rt', 'gw.auth'], ['ct', ContentFormat.cbor], ['title', 'POST device login']]),
    link(Paths.refresh, [['rt', 'gw.auth.refresh'], ['ct', ContentFormat.cbor], ['title', 'POST token refresh']]),
    link(Paths.nonce, [['rt', 'gw.auth.nonce'], ['ct', ContentFormat.cbor], ['title', 'POST login nonce']]),
  ];
  const listed = new Set<string>();
  for (const route of routes) {
    const segments = route.path.split('/').slice(1);
    // The router takes the first of routes with one path; later ones are unreachable.
    if (segments.some((s) => TEMPLATE_SEGMENT.test(s)) || listed.has(route.path)) continue;
    listed.add(route.path);
    // A pass-through route answers in whatever format the backend chooses.
    const ct: Attribute[] = route.body === 'cbor-json' ? [['ct', ContentFormat.cbor]] : [];
    const target = `/${segments.map(encodeURIComponent).join('/')}`;
    // The title names the target, not the raw path: constrained parsers split links on ','.
    links.push(link(target, [['rt', 'gw.bridge'], ...ct, ['title', `${route.methods.join(' ')} ${target}`]]));
  }
  const all = payload(links);
  const none = Buffer.alloc(0);

  return (query) => {
    const matches = filterFor(query);
    if (matches === undefined) return all;
    const picked = links.filter(matches);
    if (picked.length === links.length) return all;
    return picked.length === 0 ? none : payload(picked);
  };
}

/**
 * RFC 6690 section 4.1: `name=value` keeps the links whose target (`href`) or attribute
 * `name` equals the value, or starts with it when the value ends in `*`; an item of a list
 * attribute is enough. Only the first query option filters; one that is no filter keeps all.
 */
function filterFor(query: readonly string[]): ((link: Link) => boolean) | undefined {
  const first = query[0];
  if (first === undefined) return undefined;
  const eq = first.indexOf('=');
  if (eq <= 0) return undefined;
  const name = first.slice(0, eq).toLowerCase();
  const pattern = first.slice(eq + 1);
  const test = pattern.endsWith('*')
    ? (value: string) => value.startsWith(pattern.slice(0, -1))
    : (value: string) => value === pattern;
  if (name === 'href') return (link) => test(link.target);
  return (link) => link.attributes.get(name)?.some(test) ?? false;
}

function link(target: string, attributes: readonly Attribute[]): Link {
  const values = new Map<string, readonly string[]>();
  let text = `<${target}>`;
  for (const [name, value] of attributes) {
    const item = String(value);
    values.set(name, LIST_ATTRIBUTES.has(name) ? item.split(' ') : [item]);
    text += typeof value === 'number' ? `;${name}=${value}` : `;${name}=${quoted(item)}`;
  }
  return { target, attributes: values, text };
}

function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

function payload(links: readonly Link[]): Buffer {
  return Buffer.from(links.map((l) => l.text).join(','), 'utf8');
}
