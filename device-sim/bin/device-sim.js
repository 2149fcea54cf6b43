#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), like the gateway's CLI.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
