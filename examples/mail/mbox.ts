/** The mbox format lives with the built-in mbox helper (helpers/mbox/format.ts); the server uses it. */
export {
  asctime,
  ensureMessageId,
  headerValue,
  MboxError,
  type MboxMessage,
  mboxRecord,
  parseMbox,
} from '../../helpers/mbox/format.ts'
