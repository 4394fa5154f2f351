<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Flysystem;

use League\Flysystem\Config;

/**
 * The one conformance case overridden on every service: fetching_unknown_mime_type_of_a_file
 * expects mimeType() to fail for a file whose type Flysystem's detector cannot tell. This
 * adapter stores such a file as application/octet-stream and answers the stored type, as
 * Flysystem's AWS S3 v3 adapter does against a real service (its own test passes only by
 * stubbing a HeadObject answer without ContentType). Laravel's response() and download()
 * call mimeType(), so throwing there would break serving any such file.
 */
trait StoredMimeTypes
{
    /** Overridden: see the trait. */
    public function fetching_unknown_mime_type_of_a_file(): void
    {
        $this->runScenario(function () {
            $adapter = $this->adapter();
            $source = getenv('FLYSYSTEM_SOURCE') ?: __DIR__ . '/../../.deps/flysystem';
            $contents = file_get_contents($source . '/src/AdapterTestUtilities/test_files/unknown-mime-type.md5');
            $adapter->write('unknown-mime-type.md5', (string) $contents, new Config());
            $this->assertSame('application/octet-stream', $adapter->mimeType('unknown-mime-type.md5')->mimeType());
        });
    }
}
