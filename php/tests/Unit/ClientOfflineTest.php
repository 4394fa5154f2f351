<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Unit;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Client;
use TrioS3Rpc\ClientInterface;
use TrioS3Rpc\ClientOptions;
use TrioS3Rpc\Exception\BucketNotFound;
use TrioS3Rpc\Exception\ConnectionFailed;
use TrioS3Rpc\Exception\InvalidArgument;
use TrioS3Rpc\Exception\ObjectChanged;
use TrioS3Rpc\Exception\RpcError;
use TrioS3Rpc\Exception\TrioS3RpcException;
use TrioS3Rpc\Exception\UnknownError;
use TrioS3Rpc\TransferState;
use TrioS3Rpc\Transport\Codec;
use TrioS3Rpc\Transport\GoridgeTransport;
use TrioS3Rpc\Visibility;
use TrioS3Rpc\WriteOptions;

/** The client's own logic against a fake transport: no server, no network. */
final class ClientOfflineTest extends TestCase
{
    private static function read(string $content, string $etag, int $size = 10): array
    {
        return ['content' => $content, 'size' => $size, 'mime_type' => 'text/plain', 'last_modified' => 1700000000, 'etag' => $etag];
    }

    public function testAnIdempotentCallIsRetriedOnceOnANewConnection(): void
    {
        $fake = (new FakeTransport())->answer('s3.Exists', new ConnectionFailed('broke'), ['exists' => true]);
        self::assertTrue((new Client($fake))->exists('b', 'a.txt'));
        self::assertSame(['s3.Exists', 's3.Exists'], $fake->methods());
        self::assertSame(1, $fake->resets);
    }

    public function testANonIdempotentCallIsNotRetriedButTheConnectionIsReplaced(): void
    {
        $fake = (new FakeTransport())->answer('s3.Write', new ConnectionFailed('broke'));
        try {
            (new Client($fake))->write('b', 'a.txt', 'x');
            self::fail('expected ConnectionFailed');
        } catch (ConnectionFailed) {
        }
        self::assertSame(['s3.Write'], $fake->methods());
        self::assertSame(1, $fake->resets);
    }

    public function testACallThatNeverLeftIsRetriedWhateverItIs(): void
    {
        $fake = (new FakeTransport())->answer('s3.Write', new ConnectionFailed('refused', callSent: false), [
            'success' => true, 'pathname' => 'a.txt', 'size' => 1, 'last_modified' => 1,
        ]);
        self::assertSame(1, (new Client($fake))->write('b', 'a.txt', 'x')->size);
    }

    public function testEmptyStringsAreSentAndNullsLeftOut(): void
    {
        $fake = (new FakeTransport())->answer('s3.Write', ['success' => true, 'pathname' => '', 'size' => 1, 'last_modified' => 1]);
        (new Client($fake))->write('', '', 'x', Visibility::Public, options: new WriteOptions(storageClass: 'STANDARD_IA', sse: 'AES256'));
        self::assertSame(
            ['bucket' => '', 'pathname' => '', 'visibility' => 'public', 'storage_class' => 'STANDARD_IA', 'sse' => 'AES256', 'content' => 'x'],
            $fake->calls[0][1],
        );
    }

    public function testAStreamPinsTheFirstEtagAndRefusesAnother(): void
    {
        $fake = (new FakeTransport())->answer('s3.Read', self::read('01234', '"v1"'), self::read('56789', '"v2"'));
        $stream = (new Client($fake, new ClientOptions(chunkSize: 5)))->readStream('b', 'a.txt');
        self::assertSame('01234', fread($stream, 5));
        try {
            fread($stream, 5);
            self::fail('expected ObjectChanged');
        } catch (ObjectChanged $e) {
            self::assertStringContainsString('"v1" -> "v2"', $e->details);
        }
        self::assertSame('"v1"', $fake->calls[1][1]['if_match']);
        self::assertSame(5, $fake->calls[1][1]['offset']);
    }

    public function testAStreamResumesABrokenRangeWithTheSameEtag(): void
    {
        $fake = (new FakeTransport())->answer(
            's3.Read',
            self::read('01234', '"v1"'),
            new ConnectionFailed('broke'), new ConnectionFailed('refused', callSent: false),
            new ConnectionFailed('refused', callSent: false), self::read('56789', '"v1"'),
        );
        $client = new Client($fake, new ClientOptions(chunkSize: 5, resumeDelayMs: 0));
        self::assertSame('0123456789', stream_get_contents($client->readStream('b', 'a.txt')));
        $ranges = \array_slice($fake->calls, 1);
        self::assertCount(4, $ranges);
        foreach ($ranges as [, $args]) {
            self::assertSame(['"v1"', 5], [$args['if_match'], $args['offset']]);
        }
    }

    public function testTheResumeBudgetEnds(): void
    {
        $fake = (new FakeTransport())->answer('s3.Read', self::read('01234', '"v1"'), ...\array_fill(0, 10, new ConnectionFailed('refused', callSent: false)));
        $stream = (new Client($fake, new ClientOptions(chunkSize: 5, resumeAttempts: 2, resumeDelayMs: 0)))->readStream('b', 'a.txt');
        fread($stream, 5);
        $this->expectException(ConnectionFailed::class);
        fread($stream, 5);
    }

    public function testTheDefaultResumeWaitsCoverAnEmbeddedRestart(): void
    {
        $options = new ClientOptions();
        $total = 0;
        for ($failure = 1; $failure <= $options->resumeAttempts; $failure++) {
            $total += $options->resumeDelayUs($failure);
        }
        self::assertGreaterThan(5_000_000, $total);   // an embedded restart: about 5 s
        self::assertLessThanOrEqual(ClientOptions::MAX_RESUME_DELAY_MS * 1000, $options->resumeDelayUs(30));
        self::assertSame(30.0, $options->readTimeout);
    }

    public function testUserMetadataStorageClassAndSseComeBack(): void
    {
        $fake = (new FakeTransport())->answer('s3.GetMetadata', [
            'size' => 2, 'mime_type' => 'text/plain', 'last_modified' => 1700000000, 'visibility' => 'private',
            'config' => ['owner' => 'ann'], 'storage_class' => 'STANDARD', 'sse' => 'AES256', 'cache_control' => 'no-store',
        ]);
        $m = (new Client($fake))->getMetadata('b', 'a.txt');
        self::assertSame(['owner' => 'ann'], $m->metadata);
        self::assertSame(['STANDARD', 'AES256'], [$m->storageClass, $m->sse]);
        self::assertSame(['cache_control' => 'no-store'], $m->headers);
        self::assertSame('2023-11-14T22:13:20+00:00', $m->modifiedAt()->format(\DATE_ATOM));
    }

    public function testTransferStatesAreAnEnumAndTimesAreDates(): void
    {
        $fake = (new FakeTransport())->answer('s3.TransferStatus', ['state' => 'timed_out', 'started_at' => 1700000000], ['state' => 'paused-in-a-newer-server']);
        $client = new Client($fake);
        $status = $client->transferStatus('t');
        self::assertSame(TransferState::TimedOut, $status->transferState());
        self::assertTrue($status->transferState()->finished());
        self::assertSame('2023-11-14', $status->startedAtDate()?->format('Y-m-d'));
        self::assertNull($status->finishedAtDate());
        self::assertNull($client->transferStatus('t')->transferState());
    }

    public function testListAllWalksEveryPage(): void
    {
        $entry = static fn (string $key): array => ['key' => $key, 'size' => 1, 'last_modified' => 1, 'etag' => '"e"'];
        $fake = (new FakeTransport())->answer(
            's3.ListObjects',
            ['objects' => [$entry('a'), $entry('b')], 'is_truncated' => true, 'next_continuation_token' => 't1', 'key_count' => 2],
            ['objects' => [$entry('c')], 'is_truncated' => false, 'key_count' => 1],
        );
        $keys = \array_map(static fn ($o) => $o->key, \iterator_to_array((new Client($fake))->listAll('b', 'p/', 2), false));
        self::assertSame(['a', 'b', 'c'], $keys);
        self::assertArrayNotHasKey('continuation_token', $fake->calls[0][1]);
        self::assertSame('t1', $fake->calls[1][1]['continuation_token']);
    }

    public function testABucketBoundClientNamesItsBucket(): void
    {
        $fake = (new FakeTransport())->answer('s3.Exists', ['exists' => false]);
        $client = new Client($fake);
        self::assertInstanceOf(ClientInterface::class, $client);
        self::assertFalse($client->bucket('uploads')->exists('a.txt'));
        self::assertSame(['bucket' => 'uploads', 'pathname' => 'a.txt'], $fake->calls[0][1]);
    }

    public function testBucketInfoIsAskedOncePerBucket(): void
    {
        $fake = (new FakeTransport())->answer('s3.GetBucketInfo', ['name' => 'u', 'visibility_mode' => 'none', 'visibility' => 'public']);
        $client = new Client($fake);
        self::assertFalse($client->bucketInfo('u')->keepsObjectAcls());
        self::assertSame('public', $client->bucketInfo('u')->visibility);
        self::assertSame(['s3.GetBucketInfo'], $fake->methods());
    }

    public function testAnUnknownHeaderIsAnInvalidArgumentOfThePackage(): void
    {
        try {
            (new Client(new FakeTransport()))->write('b', 'a', 'x', headers: ['Cache-Control' => 'x']);
            self::fail('expected InvalidArgument');
        } catch (InvalidArgument $e) {
            self::assertInstanceOf(TrioS3RpcException::class, $e);
            self::assertInstanceOf(\InvalidArgumentException::class, $e);
            self::assertStringContainsString('Cache-Control', $e->getMessage());
        }
    }

    public function testTextThatIsNotUtf8UnderJsonIsAnInvalidArgumentOfThePackage(): void
    {
        try {
            Codec::Json->encode(['bucket' => 'b', 'pathname' => "caf\xe9.txt"]);
            self::fail('expected InvalidArgument');
        } catch (InvalidArgument $e) {
            self::assertInstanceOf(TrioS3RpcException::class, $e);
            self::assertStringContainsString('UTF-8', $e->getMessage());
        }
    }

    /** @return array<string, array{string, class-string, string, string}> */
    public static function wireTexts(): array
    {
        return [
            'details' => ['BUCKET_NOT_FOUND: Bucket not found (bucket: x)', BucketNotFound::class, 'Bucket not found', 'bucket: x'],
            'nested parentheses' => ['OBJECT_CHANGED: replaced (a (b) c)', ObjectChanged::class, 'replaced', 'a (b) c'],
            'no details' => ['BUCKET_NOT_FOUND: gone', BucketNotFound::class, 'gone', ''],
            'unknown code' => ['NEW_CODE: later', UnknownError::class, 'later', ''],
        ];
    }

    /** @dataProvider wireTexts */
    public function testErrorTextsBecomeTheirClasses(string $text, string $class, string $message, string $details): void
    {
        $error = RpcError::fromWireText($text);
        self::assertInstanceOf($class, $error);
        self::assertSame([$message, $details], [$error->errorMessage, $error->details]);
    }

    /** @return array<string, array{bool, int, int}> */
    public static function chunkings(): array
    {
        return [
            'json, tiny chunks' => [true, 25, 10],
            'json, pieces across chunks' => [true, (2 << 20) + 7, (1 << 20) + 1],
            'msgpack' => [false, (2 << 20) + 7, (1 << 20) + 1],
        ];
    }

    /** @dataProvider chunkings */
    public function testWriteStreamSendsEveryByteOnceInOrder(bool $base64, int $size, int $chunkSize): void
    {
        $bytes = \random_bytes($size);
        $chunks = (int) \ceil($size / $chunkSize);
        $fake = (new FakeTransport($base64))->answer('s3.UploadStart', ['upload_id' => 'u']);
        for ($i = 1; $i <= $chunks; $i++) {
            $fake->answer('s3.UploadChunk', ['size' => \min($size, $i * $chunkSize)]);
        }
        $fake->answer('s3.UploadFinish', ['success' => true, 'pathname' => 'a', 'size' => $size, 'last_modified' => 1]);
        $source = \fopen('php://temp', 'w+b');
        \fwrite($source, $bytes);
        \rewind($source);
        (new Client($fake, new ClientOptions(chunkSize: $chunkSize)))->writeStream('b', 'a', $source);
        $sent = '';
        foreach ($fake->calls as [$method, $args]) {
            if ($method === 's3.UploadChunk') {
                self::assertSame(\strlen($sent), $args['offset']);
                $sent .= $base64 ? \base64_decode($args['content'], true) : $args['content'];
            }
        }
        self::assertSame(\strlen($bytes), \strlen($sent));
        self::assertTrue($bytes === $sent);
    }

    /** @return iterable<string, array{string}> */
    public static function base64Answers(): iterable
    {
        $bytes = \random_bytes(100 << 10);
        foreach ([0, 1, 2] as $cut) {
            yield "whole, $cut padding" => [\base64_encode(\substr($bytes, $cut))];
        }
        yield 'empty' => [''];
        yield 'a space' => ['QUJD REVG'];
        yield 'a newline' => ["QUJD\nREVG"];
        yield 'padding inside' => ['QQ==QUJD'];
        yield 'three pads' => ['Q==='];
        yield 'short' => ['QUJ'];
        yield 'url-safe' => ['-_-_'];
        yield 'a quote' => ['QUJD"EVG'];
        yield 'a pad inside, one at the end' => ['QQ=DQUJ='];
        yield 'an unknown byte, padded' => ["QUJD\x01EV="];
        yield 'only padding' => ['===='];
    }

    /** @dataProvider base64Answers */
    public function testReadContentIsDecodedAsStrictBase64Decodes(string $text): void
    {
        $fake = (new FakeTransport(base64: true))->answer('s3.Read', self::read($text, '"v1"'));
        $expected = \base64_decode($text, true);
        try {
            $content = (new Client($fake))->read('b', 'a.bin')->content;
        } catch (ConnectionFailed $e) {
            self::assertFalse($expected, "refused: {$e->getMessage()}");
            return;
        }
        self::assertNotFalse($expected, 'accepted what strict base64_decode refuses');
        self::assertTrue($expected === $content);
    }

    public function testSplicedArgumentsAreTheCodecsOwnEncoding(): void
    {
        $payload = ['upload_id' => 'u', 'offset' => 5, 'config' => ['a' => 'b'], 'content' => \random_bytes(100 << 10)];
        self::assertTrue(\implode('', Codec::Msgpack->encodeParts($payload)) === \msgpack_pack($payload));
        self::assertCount(2, Codec::Msgpack->encodeParts($payload));
        $payload['content'] = \base64_encode($payload['content']);
        self::assertSame(Codec::Json->encode($payload), \implode('', Codec::Json->encodeParts($payload)));
        self::assertCount(3, Codec::Json->encodeParts($payload));
        $payload['content'] = \str_repeat('"', 100 << 10);   // not base64: encoded whole
        self::assertSame([Codec::Json->encode($payload)], Codec::Json->encodeParts($payload));
    }

    public function testFramesAreGoridgesLayout(): void
    {
        $header = GoridgeTransport::header(0x10, 300, 7, 8);
        self::assertSame(20, \strlen($header));
        $fields = \unpack('Cvw/Cflags/Vlength/Vcrc/vpad/Vseq/Vmethod', $header);
        self::assertSame([0x15, 0x10, 300, 7, 8], [$fields['vw'], $fields['flags'], $fields['length'], $fields['seq'], $fields['method']]);
        self::assertSame(\crc32(\substr($header, 0, 6)), $fields['crc']);
    }
}
