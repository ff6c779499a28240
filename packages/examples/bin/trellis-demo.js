#!/usr/bin/env node
// The sources are TypeScript run as they are: tsx compiles them on the fly.
import { register } from "tsx/esm/api"

register()
await import("../src/cli/main.ts")
