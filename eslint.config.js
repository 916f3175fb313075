import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      eqeqeq: 'error',
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  {
    files: ['test/**'],
    rules: { 'no-console': ['error', { allow: ['error', 'info'] }] },
  },
  {
    files: ['bench/**', 'scripts/**', 'bin/**', 'test/fixtures/**'],
    rules: { 'no-console': 'off' },
  },
);
