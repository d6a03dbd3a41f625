// Moved to src/pipeline/messages.ts (the producer side sits below the consumer); kept for existing imports.
export * from "../pipeline/messages";
