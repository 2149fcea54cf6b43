#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so the CLI, the tests and the demo all run the same code.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
