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
  /** Size of the blob it makes. */
  size_bytes: number
  /** Size of each input (same order), used for inputs not yet published. */
  input_bytes: number[]
}

/**
 * A recipe keeps its inputs alive in the core (recursively: an old base chunk may itself be a recipe),
 * and each rebase that changes a chunk again adds one delta to its chain. A blob goes out as a recipe
 * only while the blobs its chain keeps weigh at most CHAIN_BYTES_RATIO times the blob (the chain never
 * costs more than one extra copy: storage stays bounded) and the chain is at most MAX_RECIPE_DEPTH long
 * (a late joiner applies that many deltas); past either, the blob is published whole once and a new
 * chain starts from it.
 */
export const CHAIN_BYTES_RATIO = 2
export const MAX_RECIPE_DEPTH = 8

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

export function decodeRecipeBlock(payload: Uint8Array): Omit<RecipeBody, 'v'> {
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
  return { hash: body.hash, inputs: body.inputs, recipe: body.recipe }
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

/** Decides, once per blob of one publish, which offered recipes go out as recipes (the rest as bytes). */
export class RecipePlanner {
  private readonly decided = new Map<string, boolean>()

  constructor(
    private readonly recipes: ReadonlyMap<string, BlobRecipe>,
    /** Blobs already in the core (or appended earlier in this publish). */
    private readonly lookup: (hash: string) => BlobRef | undefined,
  ) {}

  asRecipe(hash: string): boolean {
    let decided = this.decided.get(hash)
    if (decided !== undefined) return decided
    this.decided.set(hash, false) // a recipe that reaches itself goes out as bytes
    const recipe = this.recipes.get(hash)
    decided = recipe !== undefined && this.fits(recipe)
    this.decided.set(hash, decided)
    return decided
  }

  /** The chain under `recipe`: at most MAX_RECIPE_DEPTH deep, its blobs (bytes) within the ratio. */
  private fits(recipe: BlobRecipe): boolean {
    const kept = new Map<string, number>()
    let level: [string, number][] = recipe.inputs.map((input, k) => [input, recipe.input_bytes[k] ?? 0])
    for (let depth = 1; level.length > 0; depth++) {
      if (depth > MAX_RECIPE_DEPTH) return false
      const next: [string, number][] = []
      for (const [hash, hint] of level) {
        const ref = this.lookup(hash)
        const offered = ref ? undefined : this.recipes.get(hash)
        const inputs = ref ? recipeInputs(ref) : offered && this.asRecipe(hash) ? offered.inputs : undefined
        if (!inputs) kept.set(hash, ref ? ref[2] : hint)
        else next.push(...inputs.map((input, k): [string, number] => [input, offered?.input_bytes[k] ?? 0]))
      }
      level = next
    }
    let total = 0
    for (const bytes of kept.values()) total += bytes
    return total <= CHAIN_BYTES_RATIO * recipe.size_bytes
  }
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
    if (block.hash !== hash || block.inputs.join(',') !== inputs.join(',')) {
      throw new Error(`recipe block ${ref[1]} does not describe blob ${hash} as its index says`)
    }
    for (const input of inputs) {
      // Inputs come earlier in the core than the recipe: chains end, cycles cannot be written.
      const inputRef = this.io.byHash.get(input)
      if (!inputRef || inputRef[1] >= ref[1]) throw new Error(`recipe ${hash}: input ${input} out of order`)
    }
    await Promise.all(inputs.map((input) => this.resolve(input)))
    const bytes = await derive(hash, block.recipe)
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
