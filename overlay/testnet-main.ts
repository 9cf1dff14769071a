/**
 * Standalone local DHT testnet: prints one JSON line `{"bootstrap":[{"host","port"}...]}` on stdout,
 * then runs until SIGTERM/SIGINT or until stdin closes (so a parent that dies takes it along).
 * Usage: node --import tsx overlay/testnet-main.ts [--size N] [--host 127.0.0.1]
 */
import { startTestnet } from './testnet.ts'

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

const testnet = await startTestnet(Number(arg('--size', '5')), arg('--host', '127.0.0.1'))
process.stdout.write(`${JSON.stringify({ bootstrap: testnet.bootstrap })}\n`)

let stopping = false
async function stop(): Promise<void> {
  if (stopping) return
  stopping = true
  await testnet.destroy()
  process.exit(0)
}
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
process.stdin.on('end', () => void stop())
process.stdin.on('error', () => void stop())
process.stdin.resume()
