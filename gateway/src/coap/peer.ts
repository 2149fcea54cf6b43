/** Where a datagram came from, and where its answer goes: always back to the same address and port. */
export interface Peer {
  readonly address: string;
  readonly port: number;
}

export const peerKey = (peer: Peer): string => `${peer.address}:${peer.port}`;
