import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { requireTools } from '../system/requirements.ts'

const run = promisify(execFile)

export interface PythonMessage {
  message_id: string | null
  subject: string | null
  /** The separator line (`From ...` without `From `). */
  from_line: string
  body: string
}

/**
 * Reads an mbox with Python's mailbox module: an mbox parser that is not ours, so a test does not
 * check the helpers with their own code.
 */
export async function readMboxWithPython(path: string): Promise<PythonMessage[]> {
  requireTools('python3')
  const script = `
import json, mailbox, sys
out = []
for m in mailbox.mbox(sys.argv[1], create=False):
    payload = m.get_payload(decode=True) or b''
    out.append({'message_id': m['Message-ID'], 'subject': m['Subject'], 'from_line': m.get_from(),
                'body': payload.decode('utf-8', 'replace')})
print(json.dumps(out))
`
  const { stdout } = await run('python3', ['-c', script, path], { maxBuffer: 512 * 1024 * 1024 })
  return JSON.parse(stdout) as PythonMessage[]
}
