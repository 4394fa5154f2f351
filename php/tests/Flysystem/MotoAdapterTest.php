<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Flysystem;

use League\Flysystem\AdapterTestUtilities\FilesystemAdapterTestCase;
use League\Flysystem\Config;
use League\Flysystem\FilesystemAdapter;
use TrioS3Rpc\Client;
use TrioS3Rpc\Flysystem\TrioS3RpcAdapter;
use TrioS3Rpc\Tests\LiveServer;
use TrioS3Rpc\Transport\Codec;

/**
 * Flysystem's own conformance suite, whole and unchanged, against a moto bucket with object
 * ACLs (visibility_mode: acl), over msgpack; then what this adapter adds.
 */
final class MotoAdapterTest extends FilesystemAdapterTestCase
{
    protected static function createFilesystemAdapter(): FilesystemAdapter
    {
        $client = Client::connect(LiveServer::env('TRIO_S3RPC_TCP'), Codec::Msgpack);
        return new TrioS3RpcAdapter($client, 'fly-moto', 'suite-' . getmypid(), 'acl');
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
        $this->assertSame('max-age=60', $extra['cache_control']);
        $this->assertSame('attachment; filename="page.txt"', $extra['content_disposition']);
        $this->assertSame('2000000000', $extra['expires']);
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
        $adapter = $this->useAdapter(new TrioS3RpcAdapter($client, 'fly-moto', 'paged-' . getmypid(), 'acl', listPageSize: 2));
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
