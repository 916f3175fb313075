import { describe, expect, it } from 'vitest';
import { linkLosses } from '../../src/migration/link-watch.js';
import type { MigrationHead, Phase } from '../../src/migration/record.js';

function record(id: string, peer: string, phase: Phase): MigrationHead {
  return { id, vm: id, peer, policy: 'deadline', phase, createdAt: '', updatedAt: '' };
}

const link = (peer: string, stalledSeconds?: number) => ({ peer, rate: 0, phase: 'steady', bytesAcked: 1, ...(stalledSeconds === undefined ? {} : { stalledSeconds }) });

describe('the link watch', () => {
  const records = [record('a', 'dst', 'mirror'), record('b', 'dst', 'ram'), record('c', 'other', 'base'), record('q', 'dst', 'queued'), record('old', 'dst', 'failed')];
  const running = (id: string) => ['a', 'b', 'c'].includes(id);

  it('rolls back every running migration to a peer whose link acknowledged nothing for linkLostSeconds, and no other', () => {
    expect(linkLosses({ links: [link('dst', 30.5), link('other')] }, records, 30, running)).toEqual([{ peer: 'dst', seconds: 30.5, rollBack: ['a', 'b'] }]);
  });

  it('waits until the stall is long enough, and ignores a link nobody migrates over', () => {
    expect(linkLosses({ links: [link('dst', 29.5)] }, records, 30, running)).toEqual([]);
    expect(linkLosses({ links: [link('idle', 100)] }, records, 30, running)).toEqual([]);
  });

  it('leaves a peer alone while a migration to it is past its point of no return: its recovery owns the streams', () => {
    const handing = [...records, record('h', 'dst', 'finishing')];
    expect(linkLosses({ links: [link('dst', 60)] }, handing, 30, (id) => running(id) || id === 'h')).toEqual([]);
  });
});
