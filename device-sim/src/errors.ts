export type SimErrorCode =
  /** A command-line option or runFleet() option is out of range or inconsistent. */
  | 'SIM_ERR_BAD_OPTION'
  /** The provisioning file is missing, not JSON, or not [{id, secret (hex)}]. */
  | 'SIM_ERR_DEVICES_FILE'
  /** The simulator would aim traffic at something other than this machine. */
  | 'SIM_ERR_NOT_LOOPBACK'
  /** The machine refused the sockets the fleet needs (file descriptor limit). */
  | 'SIM_ERR_SOCKETS'
  /** The scenario cannot run against this gateway as configured (e.g. tokens live too long to expire). */
  | 'SIM_ERR_SCENARIO';

/** A problem the user can fix: the CLI prints the message and exits with code 2. */
export class SimError extends Error {
  readonly code: SimErrorCode;

  constructor(code: SimErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'SimError';
    this.code = code;
  }
}
