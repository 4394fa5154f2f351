<?php

declare(strict_types=1);

namespace TrioS3Rpc;

/** The state of a transfer named by a transfer_id (s3.TransferStatus, s3.Cancel). */
enum TransferState: string
{
    case Running = 'running';
    case Completed = 'completed';
    case Failed = 'failed';
    case Cancelled = 'cancelled';
    case TimedOut = 'timed_out';

    public function finished(): bool
    {
        return $this !== self::Running;
    }
}
