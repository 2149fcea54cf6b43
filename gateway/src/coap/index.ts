export {
  buildCoapServer, createEndpoint, type CoapServer, type CoapServerOptions, type Endpoint, type EndpointObserver,
  type EndpointOptions, type EvictedTable,
} from './server.ts';
export type { Answer, Inbound, Layer, Next } from './layer.ts';
export type { DropReason } from './decode-datagram.ts';
export type { Peer } from './peer.ts';
