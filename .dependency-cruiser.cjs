/**
 * The layer rules of ARCHITECTURE.md, checked by `npm run lint` (dependency-cruiser over the TypeScript
 * import graph of src/, overlay/, snapshot/ and helpers/; tests, benches and examples may import anything).
 */
module.exports = {
  forbidden: [
    {
      name: 'core-is-pure',
      comment:
        'src/core is a pure state machine: it imports only src/core and zod (schemas); no Node module, no runtime, no library with I/O.',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { pathNot: ['^src/core/', '^node_modules/zod/'] },
    },
    {
      name: 'libraries-stand-alone',
      comment:
        'overlay/, snapshot/ and helpers/ are libraries: they import nothing of src/ (what they share lives below them, in lib/).',
      severity: 'error',
      from: { path: '^(overlay|snapshot|helpers)/' },
      to: { path: '^src/' },
    },
    {
      name: 'library-through-its-entry',
      comment:
        "src/ uses a library through its index.ts, the library's public surface (tests and benches may reach inside). One light entry besides: overlay/keys.ts (identity and key derivation, no network), so `sustain init`, `invite` and `config check` do not load hyperswarm.",
      severity: 'error',
      from: { path: '^src/' },
      to: {
        path: '^(overlay|snapshot|helpers)/',
        pathNot: ['^(overlay|snapshot|helpers)/index[.]ts$', '^overlay/keys[.]ts$'],
      },
    },
    {
      name: 'shared-below-everything',
      comment:
        'lib/ holds what every layer shares (atomic writes, the logger type); it imports no layer above it.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(src|overlay|snapshot|helpers)/' },
    },
    {
      name: 'ui-not-through-cli',
      comment:
        'The terminal UI and the demo sit beside the CLI, not on top of it: what they share with it lives in src/runtime or src/util.',
      severity: 'error',
      from: { path: '^src/(tui|demo)/' },
      to: { path: '^src/cli/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|test|bench|examples)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.tsx', '.mjs', '.js', '.json'] },
  },
}
