import { defineConfig } from 'vitest/config';

// Unit and property tests run in parallel. Tests on real QEMU guests, namespaces and daemons run
// one file at a time: on a 2-core machine, parallel TCG guests would starve each other and turn
// rate measurements into noise.
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/integration/**', 'test/e2e/**', 'test/faults/**'],
          testTimeout: 20_000,
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts', 'test/faults/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
    ],
  },
});
