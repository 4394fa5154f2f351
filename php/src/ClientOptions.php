<?php

declare(strict_types=1);

namespace TrioS3Rpc;

/**
 * Every setting of a Client and of its own transport, in one place, for Client::connect()
 * and new Client(). Defaults fit a worker serving web requests: an answer is awaited 30 s
 * (a long WriteFile, ReadFile or Copy sets its own with withControl(timeout: ...), which
 * the transport then waits for), and a stream keeps resuming across a gateway restart
 * (an embedded one takes about 5 s) for resumeAttempts waits of resumeDelayMs, doubling
 * up to 2 s each: about 11 s with the defaults.
 */
final class ClientOptions
{
    /** The longest single wait between two resume attempts. */
    public const MAX_RESUME_DELAY_MS = 2000;

    /**
     * @param int   $chunkSize      bytes per UploadChunk and per ranged Read of the streams
     * @param int   $resumeAttempts how many times a stream resumes after a broken connection (0: never)
     * @param int   $resumeDelayMs  the first wait before resuming; each further one doubles
     * @param float $connectTimeout seconds to wait for the connection
     * @param float $readTimeout    seconds to wait for an answer; 0 waits forever
     * @param bool  $retryIdempotent retry a call that only reads once on a new connection when
     *                               the connection broke (see Client::IDEMPOTENT)
     */
    public function __construct(
        public readonly int $chunkSize = 4 << 20,
        public readonly int $resumeAttempts = 8,
        public readonly int $resumeDelayMs = 200,
        public readonly float $connectTimeout = 5.0,
        public readonly float $readTimeout = 30.0,
        public readonly bool $retryIdempotent = true,
    ) {
        foreach (['chunkSize' => $chunkSize] as $name => $value) {
            if ($value < 1) {
                throw new Exception\InvalidArgument("$name must be positive, got $value");
            }
        }
        foreach (['resumeAttempts' => $resumeAttempts, 'resumeDelayMs' => $resumeDelayMs] as $name => $value) {
            if ($value < 0) {
                throw new Exception\InvalidArgument("$name must not be negative, got $value");
            }
        }
        foreach (['connectTimeout' => $connectTimeout, 'readTimeout' => $readTimeout] as $name => $value) {
            if ($value < 0 || !\is_finite($value)) {
                throw new Exception\InvalidArgument("$name must be a non-negative number of seconds, got $value");
            }
        }
    }

    /** A copy with some settings changed: $options->with(chunkSize: 8 << 20). */
    public function with(
        ?int $chunkSize = null,
        ?int $resumeAttempts = null,
        ?int $resumeDelayMs = null,
        ?float $connectTimeout = null,
        ?float $readTimeout = null,
        ?bool $retryIdempotent = null,
    ): self {
        return new self(
            $chunkSize ?? $this->chunkSize,
            $resumeAttempts ?? $this->resumeAttempts,
            $resumeDelayMs ?? $this->resumeDelayMs,
            $connectTimeout ?? $this->connectTimeout,
            $readTimeout ?? $this->readTimeout,
            $retryIdempotent ?? $this->retryIdempotent,
        );
    }

    /** Microseconds to wait before resume attempt $failures (1, 2, ...). */
    public function resumeDelayUs(int $failures): int
    {
        $ms = \min(self::MAX_RESUME_DELAY_MS, $this->resumeDelayMs * (1 << \min(20, \max(0, $failures - 1))));
        return $ms * 1000;
    }
}
