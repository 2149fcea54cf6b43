// The closed lists a setting may take one of, for the schema and for the code that reads them.

export const COAP_METHODS = ['GET', 'POST', 'PUT', 'DELETE'] as const;
export type CoapMethod = (typeof COAP_METHODS)[number];

export const SIGNING_ALGS = ['ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const BODY_MODES = ['cbor-json', 'pass-through'] as const;
export type BodyMode = (typeof BODY_MODES)[number];
