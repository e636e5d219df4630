export interface ChannelPointer { version: string; rolled_back_from?: string | null; withdrawn?: string[] }
export function withdrawn(version: string, pointer: ChannelPointer): boolean;
export function channelNews(version: string, pointer: ChannelPointer): { withdrawn: boolean; text: string } | null;
