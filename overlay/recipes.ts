import assert from 'node:assert/strict'
import { Packr } from 'msgpackr'

/**
 * Recipes: a blob the publisher can derive from other blobs (a rebased base chunk = delta applied to the
 * old base chunk) is appended as a small recipe block instead of its bytes, so a rebase never sends the
 * new base image again. The overlay never interprets a recipe: it stores it, keeps its inputs alive while
 * a kept snapshot needs it (the inputs are listed in the snapshot's index entry after its own blobs), and
 * on collect hands it to the caller's `derive`, then checks the result against the blob's hash.
 *
 * A holder that already has the derived blob (it rebased itself from the old base + delta it holds)
 * fetches nothing for it; one that lacks it (late joiner, placement share) fetches the inputs and derives.
 */

/** How the publisher says a blob can be derived (opaque `recipe` for the caller's `derive`). */
export interface BlobRecipe {
  /** Blobs (by sha256 hex) the derivation reads. */
  inputs: string[]
  recipe: Uint8Array
}

/**
 * Longest chain of recipes a blob may sit on (a recipe whose input is a recipe is depth 2). Past it the
 * blob is published whole: each rebase would otherwise keep one more old delta alive per changed chunk,
 * and a late joiner would apply that many deltas. So a changed chunk is resent at most once every
 * MAX_RECIPE_DEPTH rebases, and the core keeps at most that many deltas per chunk.
 */
export const MAX_RECIPE_DEPTH = 4

/** Rebuild a blob from its recipe; its inputs are already in the caller's store (sunk or held). */
export type Derive = (hash: string, recipe: Uint8Array) => Promise<Uint8Array>

export interface CollectOptions {
  /** True when this node already holds the blob: it is neither fetched nor derived. */
  have?: (hash: string) => Promise<boolean>
  /** Needed to collect a snapshot that has recipe blocks. */
  derive?: Derive
}

/** Counters of one collect (what it took to complete the snapshot here). */
export interface RecipeStats {
  /** Blobs (and recipe inputs) skipped because this node held them. */
  held: number
  /** Blobs fetched as bytes. */
  fetched: number
  /** Blobs derived from a recipe. */
  derived: number
  /** Payload bytes of the blob and recipe blocks read from the core (local or from peers). */
  block_bytes: number
}

/** Recipe block payload: the blob it makes, its inputs (checked against the index) and the recipe. */
interface RecipeBody {
  v: 1
  hash: string
  inputs: string[]
  recipe: Uint8Array
}

const packr = new Packr({ useRecords: false })

export function encodeRecipeBlock(hash: string, recipe: BlobRecipe): Buffer {
  const body: RecipeBody = { v: 1, hash, inputs: recipe.inputs, recipe: recipe.recipe }
  return packr.pack(body)
}

export function decodeRecipeBlock(payload: Uint8Array): { hash: string; recipe: BlobRecipe } {
  const body = packr.unpack(payload) as Partial<RecipeBody>
  if (
    body?.v !== 1 ||
    typeof body.hash !== 'string' ||
    !Array.isArray(body.inputs) ||
    !body.inputs.every((i) => typeof i === 'string') ||
    !(body.recipe instanceof Uint8Array)
  ) {
    throw new Error('malformed recipe block')
  }
  return { hash: body.hash, recipe: { inputs: body.inputs, recipe: body.recipe } }
}

/** One blob of an index entry: [sha256 hex, block, size in bytes, recipe inputs (recipe blocks only)]. */
export type BlobRef = [string, number, number] | [string, number, number, string[]]

export function recipeInputs(ref: BlobRef): string[] | undefined {
  return ref.length === 4 ? ref[3] : undefined
}

/**
 * The blobs an index entry lists: `roots` (what the snapshot needs, in order) followed by every recipe
 * input they need transitively that is not a root. `lookup` knows each published blob.
 */
export function withRecipeInputs(roots: BlobRef[], lookup: (hash: string) => BlobRef | undefined): BlobRef[] {
  const listed = new Set(roots.map(([hash]) => hash))
  const out = [...roots]
  for (let i = 0; i < out.length; i++) {
    for (const input of recipeInputs(out[i]!) ?? []) {
      if (listed.has(input)) continue
      const ref = lookup(input)
      assert(ref, `recipe input ${input} is not published`)
      listed.add(input)
      out.push(ref)
    }
  }
  return out
}

/** Depth of a published blob in recipe chains: 0 for bytes, 1 + deepest input for a recipe. */
export function recipeDepth(hash: string, lookup: (hash: string) => BlobRef | undefined): number {
  let depth = 0
  let level = [hash]
  for (; level.length > 0 && depth <= MAX_RECIPE_DEPTH + 1; depth++) {
    level = level.flatMap((h) => {
      const ref = lookup(h)
      return ref ? (recipeInputs(ref) ?? []) : []
    })
  }
  return depth - 1
}

export interface ResolverIo {
  /** The entry's blobs by hash (roots and recipe inputs). */
  byHash: Map<string, BlobRef>
  fetchBlob: (ref: BlobRef) => Promise<Uint8Array>
  fetchRecipe: (ref: BlobRef) => Promise<Uint8Array>
  /** Store a verified blob; calls are serialised by the resolver. */
  sink: (hash: string, bytes: Uint8Array) => Promise<void>
  /** A listed blob is present here now (held, fetched or derived), once per blob. */
  resolved: (ref: BlobRef) => void
  verify: (bytes: Uint8Array) => string
  options: CollectOptions
}

/**
 * Makes blobs present in the caller's store: held ones are skipped, byte blobs fetched, recipe blobs
 * derived after their inputs (recursively). Each blob is resolved once however many recipes need it.
 */
export class RecipeResolver {
  readonly stats: RecipeStats = { held: 0, fetched: 0, derived: 0, block_bytes: 0 }
  private readonly done = new Map<string, Promise<void>>()
  private sinking: Promise<void> = Promise.resolve()

  constructor(private readonly io: ResolverIo) {}

  resolve(hash: string): Promise<void> {
    let run = this.done.get(hash)
    if (!run) {
      run = this.resolveNow(hash)
      this.done.set(hash, run)
    }
    return run
  }

  private sink(hash: string, bytes: Uint8Array): Promise<void> {
    const run = this.sinking.then(() => this.io.sink(hash, bytes))
    this.sinking = run.catch(() => {})
    return run
  }

  private async resolveNow(hash: string): Promise<void> {
    const ref = this.io.byHash.get(hash)
    if (!ref) throw new Error(`blob ${hash} is not listed in the snapshot's index`)
    if (this.io.options.have && (await this.io.options.have(hash))) {
      this.stats.held++
      this.io.resolved(ref)
      return
    }
    const inputs = recipeInputs(ref)
    if (!inputs) {
      const bytes = await this.io.fetchBlob(ref)
      this.stats.fetched++
      this.stats.block_bytes += bytes.byteLength
      await this.sink(hash, bytes)
      this.io.resolved(ref)
      return
    }
    const derive = this.io.options.derive
    if (!derive) throw new Error(`blob ${hash} is a recipe and this collect cannot derive`)
    const payload = await this.io.fetchRecipe(ref)
    this.stats.block_bytes += payload.byteLength
    const block = decodeRecipeBlock(payload)
    if (block.hash !== hash || block.recipe.inputs.join(',') !== inputs.join(',')) {
      throw new Error(`recipe block ${ref[1]} does not describe blob ${hash} as its index says`)
    }
    for (const input of inputs) {
      // Inputs come earlier in the core than the recipe: chains end, cycles cannot be written.
      const inputRef = this.io.byHash.get(input)
      if (!inputRef || inputRef[1] >= ref[1]) throw new Error(`recipe ${hash}: input ${input} out of order`)
    }
    await Promise.all(inputs.map((input) => this.resolve(input)))
    const bytes = await derive(hash, block.recipe.recipe)
    if (this.io.verify(bytes) !== hash)
      throw new Error(`blob ${hash} derived from its recipe does not match its hash`)
    this.stats.derived++
    await this.sink(hash, bytes)
    this.io.resolved(ref)
  }

  async drain(): Promise<void> {
    await this.sinking
  }
}
