/** Helpers: the protocol (HELPERS.md), the SDK for service authors and the built-in merge helpers. */
export {
  ARCHIVE_MAGIC,
  ArchiveError,
  type ArchiveRecord,
  type ArchiveRecordHeader,
  ArchiveWriter,
  readArchive,
} from './archive.ts'
export { requestSnapshot } from './control.ts'
export { archiveFiles, mergeFiles } from './files.ts'
export { archiveMaildir, mergeMaildir } from './maildir.ts'
export { dotlockPath, lockMailbox, takeDotlock, withMailboxLock } from './mbox/lock.ts'
export { archiveMboxSpool, DEFAULT_SKEW_MS, mergeIntoMailbox, mergeMboxSpool } from './mbox/spool.ts'
export * from './protocol.ts'
export {
  defineHelper,
  type Helper,
  type HelperContext,
  type HelperDefinition,
  HelperFailure,
  type InfoContext,
  type MergeContext,
  parseSince,
} from './sdk.ts'
export { START_LINE, waitForStart } from './start-gate.ts'
