<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/** RELAY_UNAVAILABLE: RoadRunner's own RPC, to which this server relays the calls it does not serve (s3.relay), dropped the call. */
final class RelayUnavailable extends RpcError
{
}
