// What the rest of the gateway reads: the validated, frozen configuration, typed from the one
// table of settings, so a setting added there is in this type too.
import type { ConfigOf } from './setting.ts';
import type { GATEWAY_SETTINGS } from './settings.ts';

export {
  BODY_MODES, COAP_METHODS, LOG_LEVELS, SIGNING_ALGS, type BodyMode, type CoapMethod, type LogLevel, type SigningAlg,
} from './values.ts';
export type { RouteConfig } from './route-setting.ts';
export type { StoreConfig } from './store-setting.ts';

export type GatewayConfig = ConfigOf<typeof GATEWAY_SETTINGS>;
