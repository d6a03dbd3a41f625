// Moved to src/pipeline/enqueue.ts (the producer side sits below the consumer); kept for existing imports.
export * from "../pipeline/enqueue";
