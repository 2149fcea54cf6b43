export { buildBridge, type Bridge } from './forward.ts';
export { createRouter, fillTemplate, type Router, type RouteMatch } from './router.ts';
export { coapCodeFor, HTTP_TO_COAP, retryAfterToMaxAge } from './status-map.ts';
export { cborToJson, jsonToCbor } from './cbor-json.ts';
