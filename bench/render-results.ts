/** `npm run bench:render`: regenerates bench/RESULTS.md from bench/results/*.json (no measuring). */
import { renderResults } from './render/results-md.ts'

process.stdout.write(`${await renderResults()}\n`)
