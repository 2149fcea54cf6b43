export { buildCoapServer, type CoapServer, type CoapServerOptions } from './server.ts';
export { createEndpoint, type Endpoint, type EndpointObserver, type EndpointOptions, type EvictedTable } from './endpoint.ts';
export type { DropReason } from './decode-datagram.ts';
export type { Peer } from './peer.ts';
export { renderError } from './render-error.ts';
