<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/**
 * RESOURCE_EXHAUSTED: the server is at one of its named limits (s3.memory_limit, s3.max_chunked_uploads,
 * ...), which the message names; the call was not started and may be retried later.
 */
final class ResourceExhausted extends RpcError
{
}
