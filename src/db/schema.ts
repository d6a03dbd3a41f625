export * from "./accounts";
export * from "./events";
export * from "./messages";
export * from "./sending-domains";
export * from "./suppressions";
export * from "./metrics";
