<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests;

use TrioS3Rpc\Client;
use TrioS3Rpc\Transport\Codec;
use TrioS3Rpc\Transport\GoridgeTransport;

/**
 * The live servers the pytest harness (tests/php/test_php_suites.py) started for this run,
 * from environment variables. Missing variables fail the test: these suites are meant to
 * run under that harness, which only runs them where PHP is present.
 */
final class LiveServer
{
    public static function env(string $name): string
    {
        $value = getenv($name);
        if ($value === false || $value === '') {
            throw new \RuntimeException("$name is not set: run this suite through pytest tests/php");
        }
        return $value;
    }

    /** @return array<string, array{Client}> every socket kind with every codec */
    public static function clients(): array
    {
        $cases = [];
        foreach (['tcp' => 'TRIO_S3RPC_TCP', 'unix' => 'TRIO_S3RPC_UNIX'] as $kind => $variable) {
            foreach ([Codec::Json, Codec::Msgpack] as $codec) {
                $cases["$kind/" . strtolower($codec->name)] = [new Client(new GoridgeTransport(self::env($variable), $codec))];
            }
        }
        return $cases;
    }

    /**
     * The server's bucket to run a suite on: $name, unless TRIO_S3RPC_BUCKET_<NAME> (upper
     * case, "-" as "_") names another, so that the same suite runs on another service's
     * bucket (a harness that starts one, such as Ceph RGW's) without a copy of the suite.
     */
    public static function bucket(string $name): string
    {
        $override = getenv('TRIO_S3RPC_BUCKET_' . strtoupper(str_replace('-', '_', $name)));
        return $override === false || $override === '' ? $name : $override;
    }

    public static function unique(string $name): string
    {
        return bin2hex(random_bytes(4)) . '/' . $name;
    }
}
