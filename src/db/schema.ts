export * from "./accounts";
export * from "./events";
export * from "./message-ids";
export * from "./messages";
export * from "./mirror-pending";
export * from "./sending-domains";
export * from "./suppressions";
export * from "./webhooks";
