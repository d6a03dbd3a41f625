// Vite's `?raw` imports: the file's text as the default export.
declare module "*?raw" {
  const content: string;
  export default content;
}
