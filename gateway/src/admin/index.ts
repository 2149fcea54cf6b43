export { buildAdminServer, type AdminServer } from './admin-server.ts';
export { createMetrics, type Metrics } from './metrics.ts';
export { provisionDevices, removeDevice, validDeviceId, validScopes } from './provision.ts';
