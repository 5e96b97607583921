/** Jest for the renderer, the command helpers and the panel: TypeScript through ts-jest, in jsdom. */
module.exports = {
  testEnvironment: 'jsdom',
  testMatch: ['<rootDir>/test/**/*.spec.ts'],
  setupFiles: ['<rootDir>/test/setup.ts'],
  modulePathIgnorePatterns: ['<rootDir>/hfjobs_magic_lab/'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'test/tsconfig.json' }]
  }
};
