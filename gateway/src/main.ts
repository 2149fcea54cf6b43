import { Command, CommanderError } from 'commander';
import { GatewayError, OperatorError } from './errors.ts';
import { registerDevicesCommand } from './cli/devices-command.ts';
import { registerKeysCommand } from './cli/keys-command.ts';
import { processIo } from './cli/io.ts';
import { registerServeCommand } from './cli/serve-command.ts';
import { registerTokensCommand } from './cli/tokens-command.ts';

/** Process wiring only: parse argv, run the command, turn known errors into their exit codes. */
const program = new Command('gateway')
  .description('CoAP gateway for constrained IoT devices: CBOR login, JWT access tokens, HTTP bridge')
  .showHelpAfterError()
  .exitOverride();
registerServeCommand(program, processIo);
registerDevicesCommand(program, processIo);
registerKeysCommand(program, processIo);
registerTokensCommand(program, processIo);
const overrideExits = (command: Command): void => {
  for (const sub of command.commands) {
    sub.exitOverride();
    overrideExits(sub);
  }
};
overrideExits(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // A kid or a jti is base64url and may start with '-': commander takes it for an option.
    const looksLikeId = /unknown option '(-[A-Za-z0-9_-]{15,})'/.exec(err.message);
    if (err.code === 'commander.unknownOption' && looksLikeId !== null) {
      processIo.err(`gateway: if ${looksLikeId[1]} is a kid or a jti, put it after '--' (options first): ... -- ${looksLikeId[1]}`);
    }
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof OperatorError) {
    processIo.err(`gateway: ${err.message}`);
    process.exitCode = err.exitCode;
  } else if (err instanceof GatewayError && err.exitCode !== undefined) {
    // The store did not answer: a message that says so, not a stack trace.
    processIo.err(`gateway: ${err.message}; try again once it is back`);
    process.exitCode = err.exitCode;
  } else {
    processIo.err(`gateway: unexpected error: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  }
}
