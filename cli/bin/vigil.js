#!/usr/bin/env node
// The CLI is TypeScript run through tsx's loader, as the repo's other Node entry points are (npm run runner).
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/main.ts");
process.exitCode = await main(process.argv.slice(2));
