<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Flysystem;

use League\Flysystem\AdapterTestUtilities\FilesystemAdapterTestCase;
use League\Flysystem\Config;
use League\Flysystem\FilesystemAdapter;
use League\Flysystem\UnableToGenerateTemporaryUrl;
use League\Flysystem\UnableToSetVisibility;
use League\Flysystem\UnableToWriteFile;
use League\Flysystem\Visibility;
use TrioS3Rpc\Client;
use TrioS3Rpc\Flysystem\TrioS3RpcAdapter;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;

/**
 * Flysystem's own conformance suite against a moto bucket with object ACLs
 * (visibility_mode: acl, learnt from the server), over msgpack, unchanged but for the one
 * case StoredMimeTypes explains; then what this adapter adds, as Flysystem's AWS adapter
 * behaves.
 */
final class MotoAdapterTest extends FilesystemAdapterTestCase
{
    use StoredMimeTypes;

    protected static function createFilesystemAdapter(): FilesystemAdapter
    {
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_TCP'), Codec::Msgpack);
        return new TrioS3RpcAdapter($client, LiveServer::bucket('fly-moto'), 'suite-' . getmypid());
    }

    /** @test */
    public function the_visibility_mode_is_learnt_from_the_server(): void
    {
        $adapter = $this->adapter();
        $this->assertInstanceOf(TrioS3RpcAdapter::class, $adapter);
        $this->assertSame('acl', $adapter->visibilityMode());
    }

    /** @test */
    public function aws_write_options_round_trip_as_extra_metadata(): void
    {
        $adapter = $this->adapter();
        // Fixed bytes no sniffer knows: random ones start with a signature now and
        // then ("MZ", "PK", ...) and are then stored as that type, not octet-stream.
        $adapter->write('archived.bin', "\x01\x02\x03\x04" . str_repeat("\xaa", 96), new Config([
            'StorageClass' => 'STANDARD_IA',
            'ServerSideEncryption' => 'AES256',
            'Metadata' => ['owner' => 'ann'],
            'CacheControl' => 'no-store',
        ]));
        $attributes = $adapter->mimeType('archived.bin');
        $this->assertSame('application/octet-stream', $attributes->mimeType());
        $extra = $attributes->extraMetadata();
        $this->assertSame('STANDARD_IA', $extra['StorageClass']);
        $this->assertSame('AES256', $extra['ServerSideEncryption']);
        $this->assertSame(['owner' => 'ann'], $extra['Metadata']);
        $this->assertSame('no-store', $extra['CacheControl']);
        $this->assertArrayHasKey('ETag', $extra);
        $this->assertSame(trim($extra['ETag'], '"'), $adapter->checksum('archived.bin', new Config()));
    }

    /** @test */
    public function options_that_cannot_be_honoured_are_refused_by_name(): void
    {
        $adapter = $this->adapter();
        foreach (['Tagging' => 'a=b', 'SSECustomerKey' => 'k', 'ACL' => 'authenticated-read'] as $option => $value) {
            try {
                $adapter->write('refused.txt', 'x', new Config([$option => $value]));
                $this->fail("$option was not refused");
            } catch (UnableToWriteFile $e) {
                $this->assertStringContainsString($option, $e->getMessage());
            }
        }
        $this->assertFalse($adapter->fileExists('refused.txt'));
        try {
            $adapter->temporaryUrl('refused.txt', new \DateTimeImmutable('+1 minute'), new Config(['get_object_options' => ['VersionId' => 'v1']]));
            $this->fail('VersionId was not refused');
        } catch (UnableToGenerateTemporaryUrl $e) {
            $this->assertStringContainsString('VersionId', $e->getMessage());
        }
    }

    /** @test */
    public function an_expiry_in_the_past_is_refused(): void
    {
        $adapter = $this->adapter();
        $adapter->write('soon.txt', 'x', new Config());
        $this->expectException(UnableToGenerateTemporaryUrl::class);
        $this->expectExceptionMessage('not in the future');
        $adapter->temporaryUrl('soon.txt', new \DateTimeImmutable('-1 minute'), new Config());
    }

    /** @test */
    public function setting_the_visibility_of_a_missing_file_fails(): void
    {
        $this->expectException(UnableToSetVisibility::class);
        $this->adapter()->setVisibility('never-written.txt', Visibility::PUBLIC);
    }

    /** @test */
    public function get_object_options_name_the_download_as_aws_does(): void
    {
        $adapter = $this->adapter();
        $adapter->write('named.csv', '1,2', new Config());
        $url = $adapter->temporaryUrl('named.csv', new \DateTimeImmutable('+1 minute'), new Config([
            'get_object_options' => ['ResponseContentDisposition' => 'attachment; filename="n.csv"', 'ResponseContentType' => 'text/csv'],
        ]));
        $this->assertSame('1,2', file_get_contents($url));
        $this->assertContains('Content-Disposition: attachment; filename="n.csv"', $http_response_header);
        // Signed into the URL (moto does not answer response-content-type; SeaweedFS does,
        // tests/Client/PresignAndHeadersTest.php).
        $this->assertStringContainsString('response-content-type=text%2Fcsv', $url);
    }

    /** @test */
    public function writing_with_a_mime_type_and_object_headers(): void
    {
        $adapter = $this->adapter();
        $adapter->write('some/page.txt', 'contents', new Config([
            'mimetype' => 'text/plain+special',
            'CacheControl' => 'max-age=60',
            'ContentDisposition' => 'attachment; filename="page.txt"',
            'Expires' => new \DateTimeImmutable('@2000000000'),
            'metadata' => ['author' => 'ann'],
        ]));
        $this->assertSame('text/plain+special', $adapter->mimeType('some/page.txt')->mimeType());
        $extra = $adapter->fileSize('some/page.txt')->extraMetadata();
        $this->assertSame('max-age=60', $extra['CacheControl']);
        $this->assertSame('attachment; filename="page.txt"', $extra['ContentDisposition']);
        $this->assertSame('2000000000', $extra['Expires']);
        $this->assertSame(['author' => 'ann'], $extra['Metadata']);
    }

    /** @test */
    public function a_temporary_upload_url_takes_a_plain_http_put(): void
    {
        $adapter = $this->adapter();
        $this->assertInstanceOf(TrioS3RpcAdapter::class, $adapter);
        $upload = $adapter->temporaryUploadUrl('uploads/avatar.png', new \DateTimeImmutable('+5 minutes'), new Config(['ContentType' => 'image/png']));
        $lines = [];
        foreach ($upload['headers'] as $name => $value) {
            $lines[] = "$name: $value";
        }
        $context = stream_context_create(['http' => ['method' => 'PUT', 'header' => $lines, 'content' => 'png bytes']]);
        $this->assertNotFalse(file_get_contents($upload['url'], false, $context));
        $this->assertSame('png bytes', $adapter->read('uploads/avatar.png'));
        $this->assertSame('image/png', $adapter->mimeType('uploads/avatar.png')->mimeType());
    }

    /** @test */
    public function a_temporary_url_can_name_the_download(): void
    {
        $adapter = $this->adapter();
        $adapter->write('report.csv', '1,2', new Config());
        $url = $adapter->temporaryUrl('report.csv', new \DateTimeImmutable('+1 minute'), new Config([
            'ResponseContentDisposition' => 'attachment; filename="numbers.csv"',
        ]));
        $this->assertSame('1,2', file_get_contents($url));
        $this->assertContains('Content-Disposition: attachment; filename="numbers.csv"', $http_response_header);
    }

    /** @test */
    public function listings_and_directory_deletes_page_through_small_pages(): void
    {
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_TCP'), Codec::Json);
        $adapter = $this->useAdapter(new TrioS3RpcAdapter($client, LiveServer::bucket('fly-moto'), 'paged-' . getmypid(), listPageSize: 2));
        foreach (['a.txt', 'b.txt', 'c.txt', 'd/e.txt', 'd/f.txt', 'g/h/i.txt'] as $name) {
            $adapter->write("dir/$name", $name, new Config());
        }
        $deep = array_map(static fn ($item) => $item->path(), iterator_to_array($adapter->listContents('dir', true), false));
        sort($deep);
        $this->assertSame(['dir/a.txt', 'dir/b.txt', 'dir/c.txt', 'dir/d/e.txt', 'dir/d/f.txt', 'dir/g/h/i.txt'], $deep);
        $shallow = [];
        foreach ($adapter->listContents('dir', false) as $item) {
            $shallow[$item->path()] = $item->isDir() ? 'dir' : 'file';
        }
        ksort($shallow);
        $this->assertSame(['dir/a.txt' => 'file', 'dir/b.txt' => 'file', 'dir/c.txt' => 'file', 'dir/d' => 'dir', 'dir/g' => 'dir'], $shallow);
        $adapter->deleteDirectory('dir');
        $this->assertSame([], iterator_to_array($adapter->listContents('', true), false));
    }
}
