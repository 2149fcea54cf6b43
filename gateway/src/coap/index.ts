export { buildCoapServer, type CoapServer, type CoapServerOptions } from './server.ts';
export { renderError } from './render-error.ts';
export { contentFormatNumber, formatFor, mediaTypeFor } from './content-format.ts';
export type { CoapRequest, CoapResponse, RequestContext, RequestHandler } from './types.ts';
