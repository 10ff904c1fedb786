// Lint: typescript-eslint strict-type-checked (STYLE.md), exhaustive switches, and the layering
// arrows of DESIGN.md (recv, send → storage → transfer → crypto → proto) as import rules per folder.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Relative imports that reach into `layers` from a file one folder below src/. */
const into = (...layers) => layers.flatMap((l) => [`../${l}/*`, `../../${l}/*`]);

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      // Counts and offsets in messages are the norm; objects and unions still need a conversion.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // `() => this.close(…)` as a callback is clear enough; a void value used anywhere else is not.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // node:test's suite and test functions return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
    },
  },
  { files: ['src/proto/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: into('crypto', 'keystore', 'recv', 'send', 'runtime', 'cli', 'transfer', 'storage'), message: 'proto imports nothing of ours (DESIGN.md)' }] }] } },
  { files: ['src/crypto/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: into('keystore', 'recv', 'send', 'runtime', 'cli', 'transfer', 'storage'), message: 'crypto imports only proto (DESIGN.md)' }] }] } },
  { files: ['src/runtime/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: into('proto', 'crypto', 'keystore', 'recv', 'send', 'cli', 'transfer', 'storage'), message: 'runtime is a leaf: it imports nothing of ours (DESIGN.md)' }] }] } },
  { files: ['src/keystore/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: into('recv', 'send', 'runtime', 'cli', 'transfer', 'storage'), message: 'keystore imports only crypto and proto (DESIGN.md)' }] }] } },
  { files: ['src/cli/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: into('crypto', 'keystore', 'recv', 'send', 'runtime', 'transfer', 'storage'), message: 'cli imports only proto (DESIGN.md)' }] }] } },
  { files: ['src/transfer/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: into('keystore', 'recv', 'send', 'cli', 'storage'), message: 'transfer imports only proto, crypto and runtime (DESIGN.md)' }] }] } },
  { files: ['src/storage/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: into('crypto', 'keystore', 'recv', 'send', 'cli'), message: 'storage imports only proto, runtime and transfer (DESIGN.md)' }] }] } },
  { files: ['src/recv/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: into('send'), message: 'recv and send never import each other (DESIGN.md)' }] }] } },
  { files: ['src/send/**'], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: into('recv'), message: 'recv and send never import each other (DESIGN.md)' }] }] } },
);
