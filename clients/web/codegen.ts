import type { CodegenConfig } from '@graphql-codegen/cli';

// Types for every document in src/ from the server's committed schema, and persisted-documents.json
// ({"<sha256>": "<document>"}), the manifest groups-api loads with GROUPS_API_TRUSTED_DOCUMENTS.
// `npm run manifest` copies that manifest to ./persisted-documents.json, the one committed.
const config: CodegenConfig = {
  schema: '../../schema.graphql',
  documents: ['src/**/*.ts', '!src/gql/**/*'],
  ignoreNoDocuments: false,
  generates: {
    './src/gql/': {
      preset: 'client',
      config: {
        documentMode: 'string',
        enumsAsTypes: true,
        useTypeImports: true,
        scalars: { Decimal: 'string', Date: 'string', DateTime: 'string' },
      },
      presetConfig: {
        fragmentMasking: false,
        persistedDocuments: { mode: 'replaceDocumentWithHash', hashAlgorithm: 'sha256' },
      },
    },
  },
};

export default config;
