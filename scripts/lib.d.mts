// Types of scripts/lib.mjs for the TypeScript that imports it (test/node, test/e2e).
export const ROOT: string;
export const DEV_VARS: string;
export const DEMO_ACCOUNT: string;
export const DEMO_TOPIC_ARN: string;
export function ensureDevVars(port?: number): boolean;
export function readDevVars(): Record<string, string>;
export function mintToken(options: {
  sub?: string;
  scope: string;
  ttl?: string;
  secret?: string;
}): Promise<string>;
export function d1Bindings(): string[];
export function eventShards(): number[];
export function hash53(text: string): number;
export function hashedShard(accountId: string, shards?: number[]): number;
export function shardBindingOf(accountId: string): string;
