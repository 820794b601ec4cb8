import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  {
    // Plain Node scripts (not TypeScript): declare the Node globals they use.
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // Layering (ARCHITECTURE.md): lib never imports cli; lib/util imports nothing of ours.
    files: ['lib/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['**/cli/**'] }] },
  },
  {
    files: ['lib/util/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            '../oci/**',
            '../crypt/**',
            '../sign/**',
            '../kbs/**',
            '../image/**',
            '../storage/**',
            '**/cli/**',
          ],
        },
      ],
    },
  },
)
