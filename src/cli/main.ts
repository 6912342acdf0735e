#!/usr/bin/env node
/** The `tgnet` executable (package.json "bin"); the commands are in commands.ts. */
import { runCli } from './commands.js';

process.exitCode = await runCli(process.argv.slice(2));
