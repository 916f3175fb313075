#!/usr/bin/env node
// cowbufd, the per-host daemon (compiled to dist/ by `npm ci`).
import '../dist/daemon/entry.js';
