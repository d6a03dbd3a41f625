// Vite's client types: `?raw` imports and import.meta.glob, which the tests use to read fixtures.
/// <reference types="vite/client" />
