import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { socketOwner } from '../../src/host/socket-owner.js';
import { useTempDir } from '../support/temp-dir.js';

const tempDir = useTempDir('socket-owner');

describe('the process listening on a unix socket', () => {
  it('is found from /proc', async () => {
    const path = join(tempDir(), 'qmp.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      expect(await socketOwner(path)).toBe(process.pid);
    } finally {
      server.close();
    }
  });

  it('is an error naming the path when nothing listens there', async () => {
    await expect(socketOwner(join(tempDir(), 'none.sock'))).rejects.toThrow(/nothing listens on unix socket .*none\.sock/);
  });
});
