export { buildAdminServer, type AdminServer } from './admin-server.ts';
export { createMetrics, type Metrics } from './metrics.ts';
export { listDevices, provisionDevices, removeDevice, validDeviceId, validScopes } from './provision.ts';
export { createFleetKeys, type FleetKeys } from './fleet-keys.ts';
