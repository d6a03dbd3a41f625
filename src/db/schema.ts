export * from "./accounts";
export * from "./events";
export * from "./messages";
export * from "./metrics";
export * from "./sending-domains";
export * from "./suppressions";
