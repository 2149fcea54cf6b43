/** One sample line of the Prometheus text exposition format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Metric family name -> its TYPE. */
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL_NAME = '[a-zA-Z_][a-zA-Z0-9_]*';
// A label value: any character but " \ and newline, or one of the escapes \\ \" \n.
const LABEL = `(${LABEL_NAME})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`;
const VALUE = '([+-]?(?:[0-9]+(?:\\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\\.[0-9]+(?:[eE][+-]?[0-9]+)?|Inf|NaN))';
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL}(?:,${LABEL})*)?,?)\\})? ${VALUE}(?: -?[0-9]+)?$`);
const HELP_LINE = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SUFFIXES: Record<string, readonly string[]> = {
  counter: [''], gauge: [''], untyped: [''], histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'],
};

/**
 * A strict parser for the Prometheus text format (version 0.0.4): every line must be a HELP, a
 * TYPE, or a sample of a family whose TYPE came before it; anything else throws, naming the line.
 */
export function parsePrometheusText(text: string): Exposition {
  const exposition: Exposition = { types: new Map(), help: new Map(), samples: [] };
  if (!text.endsWith('\n')) throw new SyntaxError('exposition must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === '') return;
    const help = HELP_LINE.exec(line);
    if (help !== null) {
      if (exposition.help.has(help[1]!)) throw new SyntaxError(`${where}: second HELP`);
      exposition.help.set(help[1]!, help[2]!);
      return;
    }
    const type = TYPE_LINE.exec(line);
    if (type !== null) {
      if (exposition.types.has(type[1]!)) throw new SyntaxError(`${where}: second TYPE`);
      exposition.types.set(type[1]!, type[2]!);
      return;
    }
    if (line.startsWith('#')) throw new SyntaxError(`${where}: not a HELP or TYPE comment`);
    const sample = SAMPLE_LINE.exec(line);
    if (sample === null) throw new SyntaxError(`${where}: not a sample line`);
    const name = sample[1]!;
    const family = [...exposition.types].find(([base, kind]) => SUFFIXES[kind]!.some((suffix) => `${base}${suffix}` === name));
    if (family === undefined) throw new SyntaxError(`${where}: sample of a family without TYPE`);
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (sample[2] ?? '').matchAll(new RegExp(LABEL, 'g'))) {
      if (key! in labels) throw new SyntaxError(`${where}: label ${key} twice`);
      labels[key!] = raw!.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
    }
    const rawValue = sample.at(-1)!;
    const value = /Inf$/.test(rawValue) ? (rawValue.startsWith('-') ? -Infinity : Infinity) : Number(rawValue);
    exposition.samples.push({ name, labels, value });
  });
  return exposition;
}

/** The value of the one sample with exactly these labels (undefined when absent). */
export function sampleValue(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  const found = exposition.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted);
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${wanted}`);
  return found[0]?.value;
}

/** The sum of every sample of `name` whose labels include `labels`. */
export function sampleSum(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  return exposition.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}
