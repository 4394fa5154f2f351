<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Unit;

use TrioS3Rpc\Transport\Transport;

/**
 * A transport answering from a script, for offline tests: each call is recorded and
 * answered by the next answer queued for its method (an array, or a Throwable thrown).
 */
final class FakeTransport implements Transport
{
    /** @var list<array{string, mixed}> */
    public array $calls = [];
    public int $resets = 0;
    /** @var array<string, list<mixed>> */
    private array $answers = [];

    public function __construct(private readonly bool $base64 = false)
    {
    }

    public function answer(string $method, mixed ...$answers): self
    {
        foreach ($answers as $answer) {
            $this->answers[$method][] = $answer;
        }
        return $this;
    }

    public function call(string $method, mixed $payload): mixed
    {
        $this->calls[] = [$method, $payload];
        if (($this->answers[$method] ?? []) === []) {
            throw new \LogicException("no answer queued for $method");
        }
        $answer = \array_shift($this->answers[$method]);
        if ($answer instanceof \Throwable) {
            throw $answer;
        }
        return $answer;
    }

    public function bytesAsBase64(): bool
    {
        return $this->base64;
    }

    public function reset(): void
    {
        $this->resets++;
    }

    /** @return list<string> */
    public function methods(): array
    {
        return \array_map(static fn (array $call): string => $call[0], $this->calls);
    }
}
