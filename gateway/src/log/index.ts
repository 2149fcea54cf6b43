import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../config/index.ts';

export type { Logger } from 'pino';

/**
 * Fixed at start, never derived from input: any field that may carry a token or a secret is
 * censored wherever it appears in a log line.
 */
export const REDACT_PATHS = [
  'token', '*.token', 'accessToken', '*.accessToken', 'refreshToken', '*.refreshToken',
  'secret', '*.secret', 'authorization', '*.authorization', 'headers.authorization', '*.headers.authorization',
  'privateKey', '*.privateKey', 'd', '*.d',
];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'coap-gateway' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
