export * from "./accounts";
export * from "./click-bursts";
export * from "./events";
export * from "./messages";
export * from "./sending-domains";
export * from "./suppressions";
