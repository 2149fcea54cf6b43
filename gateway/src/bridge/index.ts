export { buildBridge, type Bridge, type BridgeOptions, type ForwardInput } from './forward.ts';
export { checkRequestContentFormat } from './body-mapping.ts';
export { createRouter, fillTemplate, type Router, type RouteMatch } from './router.ts';
export { coapCodeFor, HTTP_TO_COAP, retryAfterToMaxAge } from './status-map.ts';
export { coapEtagFor } from './etag.ts';
export { cborToJson, jsonToCbor } from './cbor-json.ts';
